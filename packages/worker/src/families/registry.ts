import type { ModelName } from '@gantry/shared';
import { cgan } from './cgan/index.ts';
import { dcgan } from './dcgan/index.ts';
import type { Family } from './family.ts';
import { pix2pix } from './pix2pix/index.ts';
import { progan } from './progan/index.ts';
import { srgan } from './srgan/index.ts';
import { transgan } from './transgan/index.ts';
import { wganGp } from './wgan-gp/index.ts';

/** Every trainable model family by name: a new family is a folder and one line here. */
const REGISTRY: Record<ModelName, Family> = {
  dcgan,
  cgan,
  'wgan-gp': wganGp,
  progan,
  srgan,
  pix2pix,
  transgan,
};

/** The family that trains `model`. */
export function familyOf(model: ModelName): Family {
  const family = REGISTRY[model];
  if (!family) throw new Error(`no family '${model}' in this worker`);
  return family;
}
