import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Database } from '@azure/cosmos';
import { LocalCosmos } from '../../devhost/services/cosmos';
import { ensureDatabase } from '../../shared/documents/containers';
import { tempDir } from './devhost';

export interface TestCosmos {
    cosmos: LocalCosmos;
    database: Database;
    stop(): Promise<void>;
}

/** The local document database in this process (no devhost), with the app's containers in a database of its own. */
export async function startCosmos(databaseId = 'flexchange'): Promise<TestCosmos> {
    const dir = tempDir();
    const cosmos = new LocalCosmos(dir, randomBytes(32).toString('base64'));
    await cosmos.start(0);
    const database = await ensureDatabase(cosmos.client(), databaseId);
    return {
        cosmos,
        database,
        stop: async () => {
            await cosmos.stop();
            rmSync(dir, { recursive: true, force: true });
        },
    };
}
