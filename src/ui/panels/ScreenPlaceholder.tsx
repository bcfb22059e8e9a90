import type { Screen } from '../../store/slices/nav.ts';

const ABOUT: Record<Screen, string> = {
  models: 'Pick a model: the bundled demo model, a Hugging Face repo id, or a folder from disk.',
  data: 'Drop a JSONL dataset: its format is detected, bad lines are listed with their reasons.',
  train: 'Choose LoRA or QLoRA, a preset or every hyperparameter, and start training.',
  runs: 'Every run, saved in this browser: curves, checkpoints and adapters to download.',
  compare: 'Overlay runs of different ranks: curves, numbers and generations side by side.',
  playground: 'Chat with the base model and with any adapter, side by side.',
};

/** The screen's heading and purpose; the screen's tools render below it as they land. */
export function ScreenPlaceholder({ screen, title }: { screen: Screen; title: string }) {
  return (
    <section aria-labelledby={`${screen}-title`} data-testid={`screen-${screen}`}>
      <h2 id={`${screen}-title`}>{title}</h2>
      <p className="muted">{ABOUT[screen]}</p>
    </section>
  );
}
