// The built studio's connect-src (vite.config.ts puts it into the bundle as __LORA_STUDIO_CONNECT_SRC__; null in the
// dev server, the CLI and tests, which have no policy), and whether a URL is inside it — so that a Hub address the
// policy would block is refused with a message that says how to allow it, instead of the browser's "Failed to fetch"
// after three retries.

declare const __LORA_STUDIO_CONNECT_SRC__: readonly string[] | null | undefined;

/** The connect-src source list this bundle runs under, or null when it runs under none. */
export function builtConnectSrc(): readonly string[] | null {
  return typeof __LORA_STUDIO_CONNECT_SRC__ === 'undefined' ? null : __LORA_STUDIO_CONNECT_SRC__;
}

/**
 * Whether CSP `connect-src <sources>` allows `url` from a page at `selfOrigin` (CSP3 §6.7.2, the forms we write:
 * 'self', scheme://host[:port] with a leading "*." host wildcard and a ":*" port wildcard, optional path ignored).
 */
export function connectSrcAllows(url: string, sources: readonly string[], selfOrigin: string | null): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  for (const source of sources) {
    if (source === "'self'") {
      if (selfOrigin && u.origin === selfOrigin) return true;
      continue;
    }
    const m = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([^/:]+)(?::(\*|\d+))?(\/.*)?$/i.exec(source);
    if (!m) continue;
    const [, scheme, wildcard, host, port] = m;
    if (u.protocol !== `${scheme.toLowerCase()}:`) continue;
    const hostname = u.hostname.toLowerCase();
    const want = host.toLowerCase();
    if (wildcard ? !hostname.endsWith(`.${want}`) : hostname !== want) continue;
    const defaultPort = u.protocol === 'https:' ? '443' : u.protocol === 'http:' ? '80' : '';
    const actual = u.port || defaultPort;
    if (port !== '*' && actual !== (port ?? defaultPort)) continue;
    return true;
  }
  return false;
}
