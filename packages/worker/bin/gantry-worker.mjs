#!/usr/bin/env node
// Worker entry: `gantry-worker` (env config, see README). Registers tsx so the TypeScript sources run as is.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
