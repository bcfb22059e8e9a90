import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';
import { startEngine } from './engine-client.ts';
import { useStudio } from '../store/studio.ts';
import { linkEngine } from '../store/engine-link.ts';
import './styles.css';

// One engine worker for the page's life; its events go straight into the store.
if (typeof navigator !== 'undefined' && 'gpu' in navigator) {
  const engine = startEngine((event) => useStudio.getState().applyEngineEvent(event));
  linkEngine(engine);
  engine.send({ type: 'init' });
} else {
  useStudio.getState().applyEngineEvent({ type: 'gpu-unavailable', message: 'This browser does not expose navigator.gpu.' });
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
