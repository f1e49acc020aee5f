#!/usr/bin/env node
// Trainer child process entry (forked by the worker); registers tsx so the TypeScript sources run as is.
import { register } from 'tsx/esm/api';

register();
await import('../src/trainer-process.ts');
