#!/usr/bin/env node
// `gantry` CLI entry; registers tsx so the TypeScript sources run as is.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
