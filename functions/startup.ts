import { app } from '@azure/functions';
import { getServices } from '../shared/composition';

// Settings are validated when the app starts: a missing or malformed one stops it with a message naming it.
// The database and its containers are created if missing; an unreachable database is retried on first use.
app.hook.appStart(async () => {
    const services = getServices();
    try {
        await services.ensureStores();
    } catch {
        // Health reports the database as down; requests that need it answer 503 until it is back.
    }
});
