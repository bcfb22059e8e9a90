// Models downloaded from the Hub into this browser (OPFS, written by the engine worker), with their size and a
// delete button. Read on the page's own thread: the cache is plain files, so no worker round trip is needed.
import { useCallback, useEffect, useState } from 'react';
import type { CachedModel } from '../../model/sources/cache.ts';
import { OpfsModelCache } from '../../model/sources/cache-opfs.ts';
import { useStudio } from '../../store/studio.ts';
import { formatBytes } from '../format.ts';

let cache: OpfsModelCache | null = null;
function opfs(): OpfsModelCache | null {
  if (!OpfsModelCache.available()) return null;
  cache ??= new OpfsModelCache();
  return cache;
}

export function CachedModels() {
  const model = useStudio((s) => s.model); // a finished load may have added a model
  const [models, setModels] = useState<CachedModel[] | null>(null);
  const [error, setError] = useState('');
  const refresh = useCallback(() => {
    const c = opfs();
    if (!c) return;
    c.list().then(setModels, (e: Error) => setError(`cannot read the model cache: ${e.message}`));
  }, []);
  useEffect(refresh, [refresh, model]);

  if (!opfs()) return null;
  return (
    <section className="card" aria-labelledby="cached-title" data-testid="cached-models">
      <h3 id="cached-title">Downloaded models</h3>
      {error && <p className="error">{error}</p>}
      {models && models.length === 0 && <p className="muted">None yet: models you download from the Hub are kept here for offline use.</p>}
      {models && models.length > 0 && (
        <ul className="cached">
          {models.map((m) => (
            <li key={m.key} data-testid="cached-model">
              <code>{m.key}</code> <span className="muted">{formatBytes(m.bytes)}{m.files.some((f) => !f.missing && f.size !== f.done) ? ', partly downloaded' : ''}</span>{' '}
              <button
                type="button"
                aria-label={`Delete ${m.key} from this browser`}
                onClick={() => {
                  opfs()!.delete(m.key).then(refresh, (e: Error) => setError(`cannot delete ${m.key}: ${e.message}`));
                }}
              >
                Delete
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
