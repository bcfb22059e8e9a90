// Playground: one prompt, answered side by side by the base model and by any saved adapters, streaming. The form's
// state lives here; the generations themselves in generations.ts.
import type { StateCreator } from 'zustand';
import { DEFAULT_GENERATION, settingsProblems, type GenerationSettings, type GenerationsSlice } from './generations.ts';
import type { ModelsSlice } from './models.ts';
import type { RunsSlice } from './runs.ts';

export interface PlaygroundSlice {
  playPrompt: string;
  playSettings: GenerationSettings;
  /** Answer with the base model too. */
  playBase: boolean;
  /** Saved runs whose adapters answer. */
  playAdapters: string[];
  /** The generations of the last press, one column each. */
  playColumns: string[];
  playError: string;
  setPlayPrompt(prompt: string): void;
  setPlaySettings(patch: Partial<GenerationSettings>): void;
  setPlayBase(on: boolean): void;
  togglePlayAdapter(runId: string): void;
  runPlayground(): void;
  stopPlayground(): void;
}

type Deps = PlaygroundSlice & Pick<GenerationsSlice, 'generations' | 'startGeneration' | 'abortGeneration'> & Pick<ModelsSlice, 'model'> & Pick<RunsSlice, 'runs'>;

export const createPlaygroundSlice: StateCreator<Deps, [], [], PlaygroundSlice> = (set, get) => ({
  playPrompt: '',
  playSettings: DEFAULT_GENERATION,
  playBase: true,
  playAdapters: [],
  playColumns: [],
  playError: '',

  setPlayPrompt(prompt) {
    set({ playPrompt: prompt });
  },
  setPlaySettings(patch) {
    set({ playSettings: { ...get().playSettings, ...patch }, playError: '' });
  },
  setPlayBase(on) {
    set({ playBase: on });
  },
  togglePlayAdapter(runId) {
    const ids = get().playAdapters;
    set({ playAdapters: ids.includes(runId) ? ids.filter((x) => x !== runId) : [...ids, runId] });
  },

  runPlayground() {
    const s = get();
    if (!s.model) return set({ playError: 'Load a model on the Models screen first.' });
    const prompt = s.playPrompt;
    if (!prompt.trim()) return set({ playError: 'Write a prompt first.' });
    const problems = settingsProblems(s.playSettings);
    if (problems.length) return set({ playError: problems.join('; ') });
    const adapters = s.playAdapters.map((id) => s.runs.find((r) => r.id === id)).filter((r) => r && r.adapter && r.model.name === s.model!.name);
    if (!s.playBase && adapters.length === 0) return set({ playError: 'Choose the base model or at least one adapter.' });
    // Chat needs a template; without one the prompt is continued as plain text.
    const settings = { ...s.playSettings, chat: s.playSettings.chat && s.model.hasChatTemplate };
    const columns: string[] = [];
    if (s.playBase) columns.push(s.startGeneration({ prompt, adapterRunId: null, label: 'Base model', settings }));
    for (const r of adapters) columns.push(s.startGeneration({ prompt, adapterRunId: r!.id, label: r!.name, settings }));
    set({ playColumns: columns, playError: '' });
  },

  stopPlayground() {
    for (const id of get().playColumns) get().abortGeneration(id);
  },
});
