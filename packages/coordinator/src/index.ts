export { type ApiDeps, buildApi } from './api/app.ts';
export { Coordinator, type CoordinatorOptions } from './coordinator.ts';
export { type PlannedTrial, planSweep } from './planner/plan-sweep.ts';
export { Scheduler } from './scheduler.ts';
export { type StoredSweep, SweepStore } from './sweep-store.ts';
