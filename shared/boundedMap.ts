/** Sets `key` in an insertion-ordered map kept to at most `max` entries: the oldest go first. */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
    map.set(key, value);
    while (map.size > max) map.delete(map.keys().next().value as K);
}

/**
 * The promise kept under `key`, else `make()`'s, kept until it fails (the next call then makes another);
 * at most `max` kept, the oldest going first. Callers asking at once share one.
 */
export function keptUntilFailed<K, V>(map: Map<K, Promise<V>>, key: K, make: () => Promise<V>, max = Number.POSITIVE_INFINITY): Promise<V> {
    const known = map.get(key);
    if (known) return known;
    const made = make();
    setBounded(map, key, made, max);
    made.catch(() => map.get(key) === made && map.delete(key));
    return made;
}

/** A promise kept with the time it was made (`keptFor`). */
export type Timed<V> = { at: number; value: Promise<V> };

/**
 * The promise kept under `key` if made less than `ms` ago, else `make()`'s, kept until it fails; at most `max` kept,
 * the oldest going first. Callers asking at once share one. Deleting the key forgets it (a change made here).
 */
export function keptFor<K, V>(map: Map<K, Timed<V>>, key: K, ms: number, make: () => Promise<V>, max = Number.POSITIVE_INFINITY): Promise<V> {
    const known = map.get(key);
    if (known && Date.now() - known.at < ms) return known.value;
    const entry = { at: Date.now(), value: make() };
    setBounded(map, key, entry, max);
    entry.value.catch(() => map.get(key) === entry && map.delete(key));
    return entry.value;
}
