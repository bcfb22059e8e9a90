import { describe, expect, it } from 'vitest';
import { HUB_CONNECT_SRC } from '../../../vite.config.ts';
import { builtConnectSrc, connectSrcAllows } from './connect-policy.ts';
import { hubModel, HubError } from './hub.ts';

const POLICY = ["'self'", ...HUB_CONNECT_SRC];
const SELF = 'http://127.0.0.1:4173';

describe('connectSrcAllows (the built studio connect-src)', () => {
  it('allows the Hub, its CDNs and the page itself', () => {
    for (const url of [
      'https://huggingface.co/org/x/resolve/main/config.json',
      'https://cdn-lfs.huggingface.co/repos/ab/cd',
      'https://cas-bridge.xethub.hf.co/xet-bridge-us/abc',
      'https://cdn-lfs-us-1.hf.co/x',
      'http://127.0.0.1:4173/datasets/index.json',
    ]) {
      expect(connectSrcAllows(url, POLICY, SELF), url).toBe(true);
    }
  });

  it('refuses other hosts, schemes and ports, and look-alikes', () => {
    for (const url of [
      'https://hf-mirror.com/org/x/resolve/main/config.json',
      'http://huggingface.co/x', // not https
      'https://huggingface.co.evil.com/x',
      'https://evilhuggingface.co/x',
      'https://hf.co/x', // "*.hf.co" does not match the bare domain
      'https://huggingface.co:8443/x',
      'http://127.0.0.1:9999/x',
      'not a url',
    ]) {
      expect(connectSrcAllows(url, POLICY, SELF), url).toBe(false);
    }
  });

  it('reads build-time additions: a port wildcard, an exact origin', () => {
    expect(connectSrcAllows('http://127.0.0.1:38211/org/x', [...POLICY, 'http://127.0.0.1:*'], SELF)).toBe(true);
    expect(connectSrcAllows('https://hf-mirror.com/x', [...POLICY, 'https://hf-mirror.com'], SELF)).toBe(true);
    expect(connectSrcAllows('https://hf-mirror.com:444/x', [...POLICY, 'https://hf-mirror.com'], SELF)).toBe(false);
  });

  it('is no policy outside the built studio (tests, the CLI, the dev server)', () => {
    expect(builtConnectSrc()).toBeNull();
  });
});

describe('a Hub address outside the policy', () => {
  it('is refused before any request, saying how to allow it', async () => {
    let requests = 0;
    const files = hubModel('org/x', { baseUrl: 'https://hf-mirror.com', connectSrc: POLICY, retryDelayMs: 0, fetch: async () => (requests++, new Response('{}')) });
    const err = await files.open('config.json').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(HubError);
    expect((err as Error).message).toBe(
      `https://hf-mirror.com/org/x@main: https://hf-mirror.com is not an address this build of the studio may connect to (its Content-Security-Policy allows ${POLICY.join(' ')}); to use this Hub, build the studio with LORA_STUDIO_CONNECT_SRC="https://hf-mirror.com"`,
    );
    expect(requests).toBe(0);
  });
});
