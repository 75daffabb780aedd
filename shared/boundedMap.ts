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
