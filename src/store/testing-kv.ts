// An in-memory KeyValue for tests of everything that stores through RunsDb (the store's slices, the worker, the
// checkpoint fuzzer). With `clone`, values go in and come out as structured clones, as IndexedDB keeps them, so a test
// cannot pass by mutating what it stored. Test-only.
import type { KeyValue } from './runs-db.ts';

export class MemoryKeyValue implements KeyValue {
  readonly map = new Map<string, unknown>();
  constructor(private readonly o: { clone?: boolean } = {}) {}
  private copy<T>(v: T): T {
    return this.o.clone ? structuredClone(v) : v;
  }
  async get<T>(k: string) {
    return this.copy(this.map.get(k)) as T | undefined;
  }
  async getMany<T>(ks: string[]) {
    return ks.map((k) => this.copy(this.map.get(k)) as T | undefined);
  }
  async set(k: string, v: unknown) {
    this.map.set(k, this.copy(v));
  }
  async del(k: string) {
    this.map.delete(k);
  }
  async update<T>(k: string, fn: (old: T | undefined) => T) {
    this.map.set(k, this.copy(fn(this.copy(this.map.get(k)) as T | undefined)));
  }
  async keys() {
    return [...this.map.keys()];
  }
}
