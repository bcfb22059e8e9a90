// Generations in flight and done, by request id: the Playground's columns and Compare's side-by-side samples both
// start them here and read their text as it streams. The worker already sends text in chunks (at most one per
// 50 ms per generation, worker/text-stream.ts), so one store update per chunk keeps React well below a re-render per
// token.
import type { StateCreator } from 'zustand';
import type { EngineEvent, GenerateExtras, GeneratedExtras } from '../../train/protocol.ts';
import { requestId, sendToEngine } from '../engine-link.ts';

export interface GenerationSettings {
  /** One user message through the chat template (true), or the prompt continued as plain text. */
  chat: boolean;
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** Strings that end the text. */
  stop: string[];
  /** Empty: a new random seed each time. */
  seed: number | null;
}

export const DEFAULT_GENERATION: GenerationSettings = { chat: true, maxNewTokens: 64, temperature: 0, topK: 0, topP: 1, stop: [], seed: null };

export type GenerationStatus = 'running' | 'done' | 'error';

export interface Generation extends GeneratedExtras {
  id: string;
  /** Who wrote it: "Base model" or the run's name. */
  label: string;
  adapterRunId: string | null;
  prompt: string;
  text: string;
  status: GenerationStatus;
  error: string;
}

export interface GenerationsSlice {
  generations: Record<string, Generation>;
  /** Starts one generation; returns its id (its entry exists at once, status 'running'). */
  startGeneration(o: { prompt: string; adapterRunId: string | null; label: string; settings: GenerationSettings }): string;
  abortGeneration(id: string): void;
  onGenerationEvent(event: EngineEvent): void;
}

/** The checks the worker would make, in words, before anything is sent: empty when the settings are usable. */
export function settingsProblems(s: GenerationSettings): string[] {
  const out: string[] = [];
  if (!(Number.isInteger(s.maxNewTokens) && s.maxNewTokens >= 1)) out.push(`max new tokens must be a whole number ≥ 1, got ${s.maxNewTokens}`);
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) out.push(`temperature must be ≥ 0 (0 = greedy), got ${s.temperature}`);
  if (!(Number.isInteger(s.topK) && s.topK >= 0)) out.push(`top-k must be a whole number ≥ 0 (0 = off), got ${s.topK}`);
  if (!(s.topP > 0 && s.topP <= 1)) out.push(`top-p must be in (0, 1] (1 = off), got ${s.topP}`);
  if (s.seed !== null && !(Number.isInteger(s.seed) && s.seed >= 0 && s.seed < 2 ** 32)) out.push(`seed must be a whole number in [0, 2^32), got ${s.seed}`);
  return out;
}

export const createGenerationsSlice: StateCreator<GenerationsSlice, [], [], GenerationsSlice> = (set, get) => {
  const patch = (id: string, change: Partial<Generation> | ((g: Generation) => Partial<Generation>)) => {
    const g = get().generations[id];
    if (!g) return;
    set({ generations: { ...get().generations, [id]: { ...g, ...(typeof change === 'function' ? change(g) : change) } } });
  };
  return {
    generations: {},

    startGeneration({ prompt, adapterRunId, label, settings }) {
      const id = requestId('generate');
      const entry: Generation = { id, label, adapterRunId, prompt, text: '', status: 'running', error: '' };
      set({ generations: { ...get().generations, [id]: entry } });
      const problems = settingsProblems(settings);
      if (problems.length) {
        patch(id, { status: 'error', error: problems.join('; ') });
        return id;
      }
      const extras: GenerateExtras = { topK: settings.topK, topP: settings.topP, stop: settings.stop.filter((s) => s.length > 0) };
      if (settings.seed !== null) extras.seed = settings.seed;
      const ok = sendToEngine({
        type: 'generate', id, prompt, adapterRunId: adapterRunId ?? undefined, maxNewTokens: settings.maxNewTokens,
        temperature: settings.temperature, chat: settings.chat, ...extras,
      });
      if (!ok) patch(id, { status: 'error', error: 'The engine is not running: this browser has no WebGPU.' });
      return id;
    },

    abortGeneration(id) {
      if (get().generations[id]?.status === 'running') sendToEngine({ type: 'abort-generation', id });
    },

    onGenerationEvent(event) {
      switch (event.type) {
        case 'token':
          patch(event.id, (g) => ({ text: g.text + event.text }));
          break;
        case 'generated': {
          const { type: _type, id, ...rest } = event;
          patch(id, { ...rest, status: 'done' });
          break;
        }
        case 'error':
          if (event.id !== undefined) patch(event.id, (g) => (g.status === 'running' ? { status: 'error', error: event.message } : {}));
          break;
        case 'gpu-lost':
          for (const g of Object.values(get().generations)) if (g.status === 'running') patch(g.id, { status: 'error', error: 'the GPU device was lost' });
          break;
      }
    },
  };
};
