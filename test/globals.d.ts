// Tests read many JSON bodies whose shape the assertions check; let `res.json()` be `any` there.
declare global {
    interface Response {
        json<T = any>(): Promise<T>;
    }
}
export {};
