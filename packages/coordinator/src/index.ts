export { Coordinator, type CoordinatorOptions } from './coordinator.ts';
export { buildApi, type ApiDeps } from './api/app.ts';
export { planSweep, type PlannedTrial } from './planner/plan-sweep.ts';
export { SweepStore, type StoredSweep } from './sweep-store.ts';
export { Scheduler } from './scheduler.ts';
