export { type BackendInfo, type BackendName, initBackend } from './backend.ts';
export { GantryWorker, type GantryWorkerOptions } from './worker.ts';
