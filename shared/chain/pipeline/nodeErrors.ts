/** What the node said, from whichever layer ethers wrapped it in (its JSON-RPC error, the short message, or the error's own). */
export function errorMessage(err: unknown): string {
    const e = err as { error?: { message?: string }; info?: { error?: { message?: string } }; shortMessage?: string; message?: string };
    return e?.error?.message ?? e?.info?.error?.message ?? e?.shortMessage ?? e?.message ?? String(err);
}
