import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * GPUs this node may use, as CUDA device ids: CUDA_VISIBLE_DEVICES when set (its order is kept),
 * else one id per line of `nvidia-smi -L`, else none.
 */
export function detectGpus(
  env: NodeJS.ProcessEnv,
  listGpus: () => string = () => execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 }),
): string[] {
  const visible = env.CUDA_VISIBLE_DEVICES?.trim();
  if (visible !== undefined && visible !== '') {
    return visible
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== '-1');
  }
  try {
    return listGpus()
      .split('\n')
      .map((line) => /^GPU (\d+):/.exec(line.trim())?.[1])
      .filter((id): id is string => id !== undefined);
  } catch {
    return [];
  }
}

/** Trials a worker runs at once by default: one per GPU on a GPU backend, else one per core. */
export function defaultConcurrency(
  onGpu: boolean,
  gpus: readonly string[],
  cores = availableParallelism(),
): number {
  if (onGpu) return Math.max(1, gpus.length);
  return Math.max(1, cores);
}

/**
 * Hands each running trial its own GPU (CUDA_VISIBLE_DEVICES of its trainer process). Without GPUs
 * every acquire returns undefined and trials share the CPU.
 */
export class DevicePool {
  private readonly free: string[];

  constructor(gpus: readonly string[]) {
    this.free = [...gpus];
  }

  acquire(): string | undefined {
    return this.free.shift();
  }

  release(id: string | undefined): void {
    if (id !== undefined && !this.free.includes(id)) this.free.push(id);
  }
}
