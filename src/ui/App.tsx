import { useStudio } from '../store/studio.ts';
import { SCREENS, type Screen } from '../store/slices/nav.ts';
import { GpuBadge } from './GpuBadge.tsx';
import { NoWebGpu } from './NoWebGpu.tsx';
import { ScreenPlaceholder } from './panels/ScreenPlaceholder.tsx';
import { DataScreen } from './screens/DataScreen.tsx';
import { ModelsScreen } from './screens/ModelsScreen.tsx';
import { RunsScreen } from './screens/RunsScreen.tsx';
import { TrainScreen } from './screens/TrainScreen.tsx';

const LABELS: Record<Screen, string> = {
  models: 'Models',
  data: 'Data',
  train: 'Train',
  runs: 'Runs',
  compare: 'Compare',
  playground: 'Playground',
};

export function App() {
  const screen = useStudio((s) => s.screen);
  const go = useStudio((s) => s.go);
  const status = useStudio((s) => s.gpuStatus);

  return (
    <div className="app">
      <header className="app-header">
        <h1 className="brand">LoRA Studio</h1>
        <span className="tagline">fine-tune on your own GPU, in the browser</span>
        <GpuBadge />
      </header>
      {status === 'lost' && <LostBanner />}
      <div className="app-body">
        <nav className="app-nav" aria-label="Studio sections">
          <ul>
            {SCREENS.map((s) => (
              <li key={s}>
                <button type="button" className={s === screen ? 'active' : ''} aria-current={s === screen ? 'page' : undefined} onClick={() => go(s)}>
                  {LABELS[s]}
                </button>
              </li>
            ))}
          </ul>
        </nav>
        <main className="app-main" aria-live="polite">
          {status === 'unavailable' ? (
            <NoWebGpu />
          ) : (
            <ScreenView screen={screen} />
          )}
        </main>
      </div>
    </div>
  );
}

function ScreenView({ screen }: { screen: Screen }) {
  if (screen === 'models') return <ModelsScreen />;
  if (screen === 'data') return <DataScreen />;
  if (screen === 'train') return <TrainScreen />;
  if (screen === 'runs') return <RunsScreen />;
  return <ScreenPlaceholder screen={screen} title={LABELS[screen]} />;
}

function LostBanner() {
  const message = useStudio((s) => s.gpuMessage);
  return (
    <div className="banner banner-error" role="alert">
      {message} Reload the page to get a new device.
    </div>
  );
}
