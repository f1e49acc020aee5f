#!/usr/bin/env node
// `gantry` CLI entry; registers tsx so the TypeScript sources run as is.
import { register } from 'tsx/esm/api';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
