export { AdaptiveP, type AdaptivePState, type AdaptiveSettings } from './adaptive-p.ts';
export {
  type AugmentOptions,
  type AugmentState,
  augmentState,
  createAugment,
  DiffAugment,
} from './diff-augment.ts';
export { type ColorParams, color, cutout, cutoutSize, maxShift, translate } from './transforms.ts';
