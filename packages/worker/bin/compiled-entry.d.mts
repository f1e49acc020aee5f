/** The worker's compiled entries' folder (under node_modules/.cache). */
export const COMPILED_ENTRY_DIR: string;
/** A fresh bundle of TypeScript entry `entry`, built first when missing or stale (unless `build` is false). */
export function compiledEntry(options: {
  entry: string;
  cacheDir?: string;
  build?: boolean;
}): Promise<{ path: string; built: boolean } | undefined>;
/** Runs `entry` (relative to `callerUrl`) from its compiled bundle, else through tsx. */
export function runEntry(callerUrl: string, entry: string): Promise<void>;
