#!/usr/bin/env node
// Augmentation child process entry (forked by the worker); registers tsx so the TypeScript sources run as is.
import { register } from 'tsx/esm/api';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
await import('../src/augmentation/augment-process.ts');
