import type { HistoryEvent } from './taskHubStore';

/** Durable Task Framework history event types (as numbered in durable-functions' HistoryEventType). */
export const EventType = {
    ExecutionStarted: 0,
    ExecutionCompleted: 1,
    ExecutionFailed: 2,
    ExecutionTerminated: 3,
    TaskScheduled: 4,
    TaskCompleted: 5,
    TaskFailed: 6,
    SubOrchestrationInstanceCreated: 7,
    SubOrchestrationInstanceCompleted: 8,
    SubOrchestrationInstanceFailed: 9,
    TimerCreated: 10,
    TimerFired: 11,
    OrchestratorStarted: 12,
    OrchestratorCompleted: 13,
    EventSent: 14,
    EventRaised: 15,
    ContinueAsNew: 16,
    GenericEvent: 17,
    HistoryState: 18,
    ExecutionSuspended: 19,
    ExecutionResumed: 20,
} as const;

export const EventTypeName: Record<number, string> = Object.fromEntries(Object.entries(EventType).map(([k, v]) => [v, k]));

/** Action types of the out-of-process replay protocol. */
export const ActionType = {
    CallActivity: 0,
    CallActivityWithRetry: 1,
    CallSubOrchestrator: 2,
    CallSubOrchestratorWithRetry: 3,
    ContinueAsNew: 4,
    CreateTimer: 5,
    WaitForExternalEvent: 6,
    CallEntity: 7,
    CallHttp: 8,
    SignalEntity: 9,
    WhenAny: 11,
    WhenAll: 12,
    LockEntities: 13,
    ReleaseEntities: 14,
} as const;

export function event(type: number, fields: Record<string, unknown>, timestamp: string, eventId = -1): HistoryEvent {
    return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: timestamp, ...fields };
}

export interface FailureDetails {
    ErrorType: string;
    ErrorMessage: string;
    StackTrace?: string;
    IsNonRetriable?: boolean;
    InnerFailure?: FailureDetails;
}

export function failureOf(err: unknown): FailureDetails {
    const e = err instanceof Error ? err : new Error(String(err));
    return { ErrorType: e.name || 'Error', ErrorMessage: e.message, StackTrace: e.stack };
}
