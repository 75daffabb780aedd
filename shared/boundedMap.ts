/** Sets `key` in an insertion-ordered map kept to at most `max` entries: the oldest go first. */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
    map.set(key, value);
    while (map.size > max) map.delete(map.keys().next().value as K);
}
