/**
 * `npm run contracts:deploy`: deploys the compiled EnergyExchange as the next contract
 * version through the core's API (POST /api/contracts), so the version is recorded
 * exactly as the API records it.
 *
 *   npm run contracts:deploy                          # against `npm start` (token from the devhost)
 *   npm run contracts:deploy -- --api https://<core>/api --token <operator token>
 *   npm run contracts:deploy -- --artifact EnergyExchangeV2        # version 2: the parties sign the terms (EIP-712)
 *
 * Options: --artifact (EnergyExchange or EnergyExchangeV2, default EnergyExchange), --api (default http://localhost:7071/api), --token (default $FLEXCHANGE_TOKEN,
 * else one minted by the devhost console at --console, default http://localhost:7070).
 */
async function main(): Promise<void> {
    const args = process.argv.slice(2);
    const opt = (name: string) => {
        const i = args.indexOf(`--${name}`);
        return i >= 0 ? args[i + 1] : undefined;
    };
    const api = (opt('api') ?? 'http://localhost:7071/api').replace(/\/$/, '');
    const artifact = opt('artifact') ?? 'EnergyExchange';
    let token = opt('token') ?? process.env.FLEXCHANGE_TOKEN;
    if (!token) {
        const consoleUrl = (opt('console') ?? 'http://localhost:7070').replace(/\/$/, '');
        const res = await fetch(`${consoleUrl}/dev/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ roles: ['Flexchange.Admin'], email: 'operator@flexchange.local', name: 'contracts:deploy' }),
        }).catch((err: unknown) => {
            throw new Error(`No token given and the devhost console at ${consoleUrl} is not answering (${(err as Error).message}). Start it with npm start, or pass --token.`);
        });
        if (!res.ok) throw new Error(`The devhost console refused a token: HTTP ${res.status} ${await res.text()}`);
        token = ((await res.json()) as { access_token: string }).access_token;
    }
    const res = await fetch(`${api}/contracts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ artifact }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${api}/contracts answered ${res.status}: ${text}`);
    const v = JSON.parse(text) as { version: number; address: string; txHash: string; blockNumber: number };
    console.log(`${artifact} v${v.version} at ${v.address} (tx ${v.txHash}, block ${v.blockNumber})`);
}

main().catch((err: unknown) => {
    console.error(`contracts:deploy: ${(err as Error).message}`);
    process.exit(1);
});
