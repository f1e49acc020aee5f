#!/usr/bin/env node
// Trainer child process entry (forked by the worker): runs src/trainer-process.ts from its compiled bundle
// (compiled-entry.mjs), or through tsx when there is none.
const { user, system } = process.cpuUsage();
performance.mark('gantry:entry', { detail: { cpu: (user + system) / 1000 } });
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { runEntry } = await import('./compiled-entry.mjs');
await runEntry(import.meta.url, '../src/trainer-process.ts');
