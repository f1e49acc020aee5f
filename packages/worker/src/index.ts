export { GantryWorker, type GantryWorkerOptions } from './worker.ts';
export { initBackend, type BackendName, type BackendInfo } from './backend.ts';
