export { type BackendInfo, type BackendName, initBackend } from './backend.ts';
export type { ChildMessage, ParentMessage, TrainerChild, TrainerLauncher } from './ipc.ts';
export { GantryWorker, type GantryWorkerOptions } from './worker.ts';
