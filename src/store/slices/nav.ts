import type { StateCreator } from 'zustand';

export const SCREENS = ['models', 'data', 'train', 'runs', 'compare', 'playground'] as const;
export type Screen = (typeof SCREENS)[number];

export interface NavSlice {
  screen: Screen;
  go(screen: Screen): void;
}

export const createNavSlice: StateCreator<NavSlice, [], [], NavSlice> = (set) => ({
  screen: 'models',
  go: (screen) => set({ screen }),
});
