import { useEffect } from 'react';
import { sendToEngine } from '../store/engine-link.ts';
import { useStudio } from '../store/studio.ts';
import { SCREENS, type Screen } from '../store/slices/nav.ts';
import { GpuBadge } from './GpuBadge.tsx';
import { InterruptedRunBanner } from './InterruptedRunBanner.tsx';
import { NoWebGpu } from './NoWebGpu.tsx';
import { ScreenPlaceholder } from './panels/ScreenPlaceholder.tsx';
import { CompareScreen } from './screens/CompareScreen.tsx';
import { DataScreen } from './screens/DataScreen.tsx';
import { ModelsScreen } from './screens/ModelsScreen.tsx';
import { PlaygroundScreen } from './screens/PlaygroundScreen.tsx';
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
  const recovering = useStudio((s) => s.gpuRecovering);
  const notice = useStudio((s) => s.gpuNotice);
  useEffect(() => {
    // Debug mode lets the engine honour 'debug-lose-device' (the device-loss e2e test uses it).
    if (DEBUG) sendToEngine({ type: 'debug-mode', enabled: true });
  }, []);

  return (
    <div className="app">
      <header className="app-header">
        <h1 className="brand">LoRA Studio</h1>
        <span className="tagline">fine-tune on your own GPU, in the browser</span>
        <GpuBadge />
        {DEBUG && status === 'ready' && (
          <button type="button" onClick={() => sendToEngine({ type: 'debug-lose-device' })} title="Destroys the GPU device so the recovery path runs (?debug=1)">
            Simulate GPU loss
          </button>
        )}
      </header>
      {status === 'lost' && (recovering ? <RecoveringBanner /> : <LostBanner />)}
      {status !== 'lost' && notice && <RecoveredBanner notice={notice} />}
      <InterruptedRunBanner />
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
  if (screen === 'compare') return <CompareScreen />;
  if (screen === 'playground') return <PlaygroundScreen />;
  return <ScreenPlaceholder screen={screen} title={LABELS[screen]} />;
}

/** The page was opened with ?debug=1: debug-only controls are shown. */
const DEBUG = typeof location !== 'undefined' && new URLSearchParams(location.search).get('debug') === '1';

function RecoveringBanner() {
  const message = useStudio((s) => s.gpuMessage);
  return (
    <div className="banner" role="status" data-testid="gpu-banner" style={{ background: 'var(--warn)', color: 'var(--panel)' }}>
      <strong>GPU lost, recovering…</strong> {message}
    </div>
  );
}

function RecoveredBanner({ notice }: { notice: string }) {
  const dismiss = useStudio((s) => s.dismissGpuNotice);
  return (
    <div className="banner row" role="status" data-testid="gpu-banner" style={{ background: 'var(--ok)', color: 'var(--panel)' }}>
      <span>{notice}</span>{' '}
      <button type="button" onClick={dismiss} aria-label="Dismiss the GPU recovery notice">Dismiss</button>
    </div>
  );
}

function LostBanner() {
  const message = useStudio((s) => s.gpuMessage);
  return (
    <div className="banner banner-error" role="alert" data-testid="gpu-banner">
      {message} Reload the page to get a new device.
    </div>
  );
}
