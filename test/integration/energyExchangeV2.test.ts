import { concat, dataSlice, getAddress, Contract, ContractFactory, HDNodeWallet, Interface, JsonRpcProvider, Signature, toBeHex, TypedDataEncoder, Wallet, ZeroAddress, id as keccakId, type ContractTransactionReceipt, type ContractTransactionResponse, type InterfaceAbi } from 'ethers';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Artifact } from '../../contracts/build';
import { EnergyExchange } from '../../shared/chain/energyExchange';
import { proposalTypedData, termsDigest, termsStructHash, type ProposalTypedData, type TermsSource } from '../../shared/proposals/terms';
import { startLedger, type TestLedger } from '../harness/ledger';

const artifact: Artifact = JSON.parse(readFileSync(path.join(__dirname, '../../contracts/artifacts/EnergyExchangeV2.json'), 'utf8'));
const iface = new Interface(artifact.abi as InterfaceAbi);
const HOUR = 3600;
/** secp256k1's group order: s and n − s are both valid signatures of the same digest (the malleable twin). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/**
 * EnergyExchangeV2 on anvil: the parties sign the terms themselves (EIP-712, the typed data of
 * shared/proposals/terms.ts), anyone submits the signatures, and batches skip what does not hold.
 */
describe('EnergyExchangeV2 on a ledger', () => {
    let chain: TestLedger;
    let provider: JsonRpcProvider;
    let operator: HDNodeWallet;
    let outsider: HDNodeWallet;
    let parties: HDNodeWallet[];
    let exchange: Contract;
    let seq = 0;

    const mined = async (sent: Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> => {
        const receipt = await (await sent).wait();
        if (!receipt) throw new Error('no receipt');
        return receipt;
    };
    const events = (receipt: ContractTransactionReceipt) =>
        receipt.logs.map((log) => {
            const parsed = iface.parseLog(log)!;
            const args = parsed.args.toArray(true) as unknown[];
            // A skipped item's reason is the custom error it would have reverted with.
            if (parsed.name.endsWith('Skipped')) {
                const reason = iface.parseError(args.at(-1) as string)!;
                return { name: parsed.name, args: [...args.slice(0, -1), { error: reason.name, args: reason.args.toArray(true) }] };
            }
            return { name: parsed.name, args };
        });
    const latest = async () => (await provider.getBlock('latest'))!.timestamp;
    const deploy = async (): Promise<Contract> => {
        const deployed = await new ContractFactory(artifact.abi as InterfaceAbi, artifact.bytecode, operator).deploy();
        await deployed.deploymentTransaction()!.wait();
        return new Contract(await deployed.getAddress(), artifact.abi as InterfaceAbi, operator);
    };

    /** A proposal's terms under `contract`'s signing domain (as the port gives it), and what anchors it. */
    const terms = async (members: HDNodeWallet[], contract: Contract = exchange, over: Partial<TermsSource['terms']> = {}, deadline?: number) => {
        const id = keccakId(`v2 proposal ${++seq}`);
        const due = deadline ?? (await latest()) + HOUR;
        const source: TermsSource = {
            chainId: id,
            parties: members.map((m) => ({ account: m.address })),
            terms: { product: 'baseload', direction: 'sell', quantityMWh: 12.5, priceGbpPerMWh: 71.25, deliveryStart: '2027-01-01T00:00:00Z', deliveryEnd: '2027-01-01T00:30:00Z', ...over },
            assets: [{ sha256: keccakId(`doc ${seq}`).slice(2), algorithm: 'sha256' }],
            expiresAt: new Date(due * 1000).toISOString(),
        };
        const port = new EnergyExchange({ version: 2, address: String(contract.target) }, artifact.abi as InterfaceAbi, { rpc: (m, p) => provider.send(m, p ?? []) });
        const td = proposalTypedData(source, port.signingDomain(31337));
        return { id, td, anchor: { id, termsHash: termsStructHash(td), parties: members.map((m) => m.address), deadline: due } };
    };
    const signed = (wallet: HDNodeWallet, td: ProposalTypedData) => wallet.signTypedData(td.domain, td.types, td.message);
    const anchor = async (...batch: Awaited<ReturnType<typeof terms>>['anchor'][]) => mined(exchange.createProposals(batch));
    const submit = (items: { id: string; party: string; signature: string }[], from: HDNodeWallet = outsider) => mined((exchange.connect(from) as Contract).submitSignatures(items));

    beforeAll(async () => {
        chain = await startLedger({ mining: 'instant' });
        provider = new JsonRpcProvider(chain.url, 31337, { staticNetwork: true, cacheTimeout: -1 });
        provider.pollingInterval = 50;
        const wallet = () => Wallet.createRandom().connect(provider);
        [operator, outsider] = [wallet(), wallet()];
        parties = Array.from({ length: 4 }, wallet);
        for (const w of [operator, outsider]) await chain.fund(w.address, 10_000);
        exchange = await deploy();
    });
    afterAll(async () => {
        provider?.destroy();
        await chain?.stop();
    });

    it('signs under the EIP-712 domain the port names: the digest on-chain is the one standard tooling computes', async () => {
        const { id, td, anchor: a } = await terms([parties[0]!, parties[1]!]);
        await anchor(a);
        expect(td.domain).toEqual({ name: 'Flexchange EnergyExchange', version: '2', chainId: 31337, verifyingContract: exchange.target });
        expect(await exchange.domainSeparator()).toBe(TypedDataEncoder.hashDomain(td.domain));
        expect(await exchange.signingDigest(id)).toBe(termsDigest(td));
        const [status, deadline, , onChainParties, signatures, termsHash] = await exchange.getProposal(id);
        expect([status, deadline, onChainParties, signatures, termsHash]).toEqual([1n, BigInt(a.deadline), a.parties, 0n, a.termsHash]);
    });

    it('completes when every party’s signature is in, whoever submits them, in one batch or several', async () => {
        const { id, td, anchor: a } = await terms([parties[0]!, parties[1]!, parties[2]!]);
        await anchor(a);
        const first = await submit([{ id, party: parties[1]!.address, signature: await signed(parties[1]!, td) }]);
        expect(events(first)).toEqual([{ name: 'ProposalSigned', args: [id, parties[1]!.address, 1n] }]);
        const rest = await submit(
            [
                { id, party: parties[0]!.address, signature: await signed(parties[0]!, td) },
                { id, party: parties[2]!.address, signature: await signed(parties[2]!, td) },
            ],
            operator,
        );
        expect(events(rest)).toEqual([
            { name: 'ProposalSigned', args: [id, parties[0]!.address, 2n] },
            { name: 'ProposalSigned', args: [id, parties[2]!.address, 3n] },
            { name: 'ProposalCompleted', args: [id] },
        ]);
        expect(await exchange.statusOf(id)).toBe(2n);
        expect(await exchange.hasSigned(id, parties[0]!.address)).toBe(true);
    });

    it('refuses, item by item, a signature over other terms, for another chain, contract or proposal, a replay and malformed ones, and records the good one in the same batch', async () => {
        const [a, b] = [parties[0]!, parties[1]!];
        const p = await terms([a, b]);
        const other = await terms([a, b]);
        await anchor(p.anchor, other.anchor);
        const elsewhere = await deploy();
        const changedTerms = { ...p.td, message: { ...p.td.message, pricePencePerMWh: '7100' } };
        const otherChain = { ...p.td, domain: { ...p.td.domain, chainId: 1 } };
        const otherContract = { ...p.td, domain: { ...p.td.domain, verifyingContract: String(elsewhere.target) } };
        const good = await signed(a, p.td);
        // a's valid signature of the other proposal, in its malleable form: s → n − s, v flipped (the same signer recovers).
        const sig = Signature.from(await signed(a, other.td));
        const twin = concat([sig.r, toBeHex(N - BigInt(sig.s), 32), toBeHex(sig.v === 27 ? 28 : 27, 1)]);
        const batch = [
            { id: p.id, party: b.address, signature: await signed(b, changedTerms) },
            { id: p.id, party: b.address, signature: await signed(b, otherChain) },
            { id: p.id, party: b.address, signature: await signed(b, otherContract) },
            { id: p.id, party: b.address, signature: await signed(b, other.td) },
            { id: p.id, party: a.address, signature: good },
            { id: p.id, party: a.address, signature: good },
            { id: other.id, party: a.address, signature: twin },
            { id: other.id, party: b.address, signature: (await signed(b, other.td)).slice(0, 130) },
            { id: other.id, party: outsider.address, signature: await signed(outsider, other.td) },
            { id: keccakId('no such proposal'), party: a.address, signature: good },
        ];
        // The twin is no forgery: the ecrecover precompile takes it for a's signature, which is why the contract refuses high s.
        const precompile = await provider.call({ to: toBeHex(1, 20), data: concat([termsDigest(other.td), toBeHex(sig.v === 27 ? 28 : 27, 32), sig.r, toBeHex(N - BigInt(sig.s), 32)]) });
        expect(getAddress(dataSlice(precompile, 12))).toBe(a.address);
        const receipt = await submit(batch);
        const wrongSigner = () => ({ error: 'WrongSigner', args: [p.id, b.address, expect.not.stringMatching(new RegExp(`^(${b.address}|${ZeroAddress})$`, 'i'))] });
        expect(events(receipt)).toEqual([
            { name: 'SignatureSkipped', args: [p.id, b.address, 0n, wrongSigner()] },
            { name: 'SignatureSkipped', args: [p.id, b.address, 1n, wrongSigner()] },
            { name: 'SignatureSkipped', args: [p.id, b.address, 2n, wrongSigner()] },
            { name: 'SignatureSkipped', args: [p.id, b.address, 3n, wrongSigner()] },
            { name: 'ProposalSigned', args: [p.id, a.address, 1n] },
            { name: 'SignatureSkipped', args: [p.id, a.address, 5n, { error: 'AlreadySigned', args: [p.id, a.address] }] },
            { name: 'SignatureSkipped', args: [other.id, a.address, 6n, { error: 'MalformedSignature', args: [other.id, a.address] }] },
            { name: 'SignatureSkipped', args: [other.id, b.address, 7n, { error: 'MalformedSignature', args: [other.id, b.address] }] },
            { name: 'SignatureSkipped', args: [other.id, outsider.address, 8n, { error: 'NotAParty', args: [other.id, outsider.address] }] },
            { name: 'SignatureSkipped', args: [keccakId('no such proposal'), a.address, 9n, { error: 'ProposalNotFound', args: [keccakId('no such proposal')] }] },
        ]);
        expect(await exchange.hasSigned(p.id, b.address)).toBe(false);
        expect(await exchange.hasSigned(other.id, a.address)).toBe(false);
    });

    it('takes no signature once a proposal is cancelled or past its deadline', async () => {
        const [a, b] = [parties[0]!, parties[1]!];
        const cancelled = await terms([a, b]);
        const late = await terms([a, b], exchange, {}, (await latest()) + 30);
        await anchor(cancelled.anchor, late.anchor);
        await mined(exchange.cancelProposal(cancelled.id));
        await chain.rpc('evm_increaseTime', [60]);
        const receipt = await submit([
            { id: cancelled.id, party: a.address, signature: await signed(a, cancelled.td) },
            { id: late.id, party: a.address, signature: await signed(a, late.td) },
        ]);
        expect(events(receipt)).toEqual([
            { name: 'SignatureSkipped', args: [cancelled.id, a.address, 0n, { error: 'ProposalNotOpen', args: [cancelled.id, 3n] }] },
            { name: 'SignatureSkipped', args: [late.id, a.address, 1n, { error: 'DeadlinePassed', args: [late.id, BigInt(late.anchor.deadline)] }] },
        ]);
    });

    it('anchors a batch skipping the proposals that do not hold; only the owner anchors and cancels', async () => {
        const [a, b] = [parties[0]!, parties[1]!];
        const good = await terms([a, b]);
        const existing = await terms([a, b]);
        await anchor(existing.anchor);
        const now = await latest();
        const batch = [
            good.anchor,
            existing.anchor,
            { ...good.anchor, id: keccakId('one party'), parties: [a.address] },
            { ...good.anchor, id: keccakId('twice'), parties: [a.address, a.address] },
            { ...good.anchor, id: keccakId('zero'), parties: [a.address, ZeroAddress] },
            { ...good.anchor, id: keccakId('past'), deadline: now - 1 },
            { ...good.anchor, id: keccakId('no terms'), termsHash: '0x' + '00'.repeat(32) },
            { ...good.anchor, id: '0x' + '00'.repeat(32) },
        ];
        expect(await exchange.createProposals.staticCall(batch)).toBe(1n);
        const receipt = await anchor(...batch);
        const skipped = (i: number, id: string, error: string, args: unknown[]) => ({ name: 'ProposalSkipped', args: [id, BigInt(i), { error, args }] });
        expect(events(receipt)).toEqual([
            { name: 'ProposalCreated', args: [good.id, [a.address, b.address], BigInt(good.anchor.deadline), good.anchor.termsHash] },
            skipped(1, existing.id, 'ProposalExists', [existing.id]),
            skipped(2, keccakId('one party'), 'InvalidPartyCount', [1n]),
            skipped(3, keccakId('twice'), 'DuplicateParty', [a.address]),
            skipped(4, keccakId('zero'), 'ZeroAddress', []),
            skipped(5, keccakId('past'), 'DeadlineInPast', [BigInt(now - 1)]),
            skipped(6, keccakId('no terms'), 'InvalidTermsHash', [keccakId('no terms')]),
            skipped(7, '0x' + '00'.repeat(32), 'InvalidProposalId', []),
        ]);
        const stranger = exchange.connect(outsider) as Contract;
        for (const attempt of [stranger.createProposals.staticCall([good.anchor]), stranger.cancelProposal.staticCall(good.id)]) {
            await expect(attempt).rejects.toMatchObject({ revert: { name: 'NotOwner', args: [outsider.address] } });
        }
        await expect(exchange.cancelProposal.staticCall(keccakId('nothing'))).rejects.toMatchObject({ revert: { name: 'ProposalNotFound' } });
        await expect(exchange.signingDigest(keccakId('nothing'))).rejects.toMatchObject({ revert: { name: 'ProposalNotFound' } });
        // Through the port, a view the contract refuses is a 409 naming the error, not an unclassified failure.
        const port = new EnergyExchange({ version: 2, address: String(exchange.target) }, artifact.abi as InterfaceAbi, { rpc: (m, p) => provider.send(m, p ?? []) });
        await expect(port.signingDigest(keccakId('nothing'))).rejects.toMatchObject({ status: 409, code: 'contract_revert', errorName: 'ProposalNotFound' });
    });

    it('sends its batches with gas limits the port knows beforehand, which hold for two parties and for eight', async () => {
        const port = new EnergyExchange({ version: 2, address: String(exchange.target) }, artifact.abi as InterfaceAbi, { rpc: (m, p) => provider.send(m, p ?? []) });
        const eight = [...parties, ...Array.from({ length: 4 }, () => Wallet.createRandom())];
        /** Sends the port's call with the port's gas limit: it must succeed, use no more, and not ask for far more. */
        const sent = async (call: { to: string; data: string; gasLimit?: bigint }) => {
            expect(call.gasLimit).toBeDefined();
            const receipt = (await (await operator.sendTransaction({ to: call.to, data: call.data, gasLimit: call.gasLimit })).wait())!;
            expect(receipt.status).toBe(1);
            expect(receipt.gasUsed).toBeLessThanOrEqual(call.gasLimit!);
            expect(receipt.gasUsed * 4n).toBeGreaterThan(call.gasLimit!);
            return receipt;
        };
        for (const members of [parties.slice(0, 2), eight]) {
            for (const size of [1, 30]) {
                const batch = await Promise.all(Array.from({ length: size }, () => terms(members)));
                const anchored = await sent(port.createProposals(batch.map((x) => ({ chainProposalId: x.id, parties: members.map((m) => m.address), assets: [], expiresAt: new Date(x.anchor.deadline * 1000).toISOString(), termsHash: x.anchor.termsHash }))));
                expect(events(anchored as ContractTransactionReceipt).filter((e) => e.name === 'ProposalCreated')).toHaveLength(size);
                // All but the last party in one batch, then the last party's alone: the one that reads every party slot and completes.
                const signatures = async (who: HDNodeWallet[]) => (await Promise.all(batch.flatMap((x) => who.map(async (m) => ({ chainProposalId: x.id, party: m.address, signature: await signed(m, x.td) })))));
                await sent(port.submitSignatures(await signatures(members.slice(0, -1))));
                const last = await sent(port.submitSignatures(await signatures(members.slice(-1))));
                expect(events(last as ContractTransactionReceipt).filter((e) => e.name === 'ProposalCompleted')).toHaveLength(size);
            }
        }
    }, 120_000);

    it('reports the gas per two-party proposal, anchored and signed in batches of 1, 10 and 100', async () => {
        const figures: string[] = [];
        for (const size of [1, 10, 100]) {
            const batch = await Promise.all(Array.from({ length: size }, () => terms([parties[2]!, parties[3]!])));
            const created = await anchor(...batch.map((x) => x.anchor));
            const items = (await Promise.all(batch.map(async (x) => [{ id: x.id, party: parties[2]!.address, signature: await signed(parties[2]!, x.td) }, { id: x.id, party: parties[3]!.address, signature: await signed(parties[3]!, x.td) }]))).flat();
            const signing = await submit(items);
            expect(events(signing).filter((e) => e.name === 'ProposalCompleted')).toHaveLength(size);
            const perProposal = (created.gasUsed + signing.gasUsed) / BigInt(size);
            figures.push(`batch ${String(size).padStart(3)}: ${perProposal} gas per proposal (anchor ${created.gasUsed / BigInt(size)}, two signatures ${signing.gasUsed / BigInt(size)})`);
            expect(perProposal).toBeGreaterThan(0n);
        }
        console.log(`EnergyExchangeV2 gas per two-party proposal:\n  ${figures.join('\n  ')}`);
    }, 120_000);
});
