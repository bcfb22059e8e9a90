// The studio's one store, bound from slices per concern (zustand's slices pattern).
import { create } from 'zustand';
import { createGpuSlice, type GpuSlice } from './slices/gpu.ts';
import { createNavSlice, type NavSlice } from './slices/nav.ts';

export type StudioState = GpuSlice & NavSlice;

export const useStudio = create<StudioState>()((...a) => ({
  ...createGpuSlice(...a),
  ...createNavSlice(...a),
}));
