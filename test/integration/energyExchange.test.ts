import { Contract, ContractFactory, HDNodeWallet, Interface, JsonRpcProvider, Wallet, ZeroAddress, ZeroHash, id as keccakId, type ContractTransactionReceipt, type ContractTransactionResponse, type InterfaceAbi } from 'ethers';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Artifact } from '../../contracts/build';
import { startLedger, type TestLedger } from '../harness/ledger';

const artifact: Artifact = JSON.parse(readFileSync(path.join(__dirname, '../../contracts/artifacts/EnergyExchange.json'), 'utf8'));
const iface = new Interface(artifact.abi as InterfaceAbi);

const Status = { None: 0n, Open: 1n, Completed: 2n, Cancelled: 3n } as const;
const HOUR = 3600;

interface AssetInput {
    hash: string;
    algorithm: string;
    location: string;
}

const asset = (name: string, location = `https://flexchangedocs.blob.core.windows.net/proposals/${name}/terms.pdf`): AssetInput => ({
    hash: keccakId(`document ${name}`),
    algorithm: 'sha256',
    location,
});

/** The events a transaction emitted, decoded, in order. */
function events(receipt: ContractTransactionReceipt): { name: string; args: unknown[] }[] {
    return receipt.logs.map((log) => {
        const parsed = iface.parseLog(log);
        if (!parsed) throw new Error(`an undecodable log from ${log.address}`);
        return { name: parsed.name, args: parsed.args.toArray(true) };
    });
}

/** Awaits a call or transaction that must revert with the custom error `name(args)`; returns nothing on success. */
async function expectRevert(attempt: Promise<unknown>, name: string, args: unknown[] = []): Promise<void> {
    let failure: any;
    try {
        await attempt;
    } catch (err) {
        failure = err;
    }
    if (failure === undefined) throw new Error(`expected a revert with ${name}, but it succeeded`);
    // ethers decodes the revert data with the contract's ABI; decode it here if it did not.
    const revert = failure.revert ?? (typeof failure.data === 'string' ? iface.parseError(failure.data) : null);
    if (!revert) throw new Error(`expected a revert with ${name}, got: ${failure.shortMessage ?? failure.message}`);
    expect({ name: revert.name, args: Array.from(revert.args) }).toEqual({ name, args });
}

describe('EnergyExchange on a ledger', () => {
    let chain: TestLedger;
    let provider: JsonRpcProvider;
    let operator: HDNodeWallet;
    let outsider: HDNodeWallet;
    let parties: HDNodeWallet[];
    let exchange: Contract;
    let proposalSeq = 0;
    /** Gas used by the calls the README quotes, logged once at the end. */
    const gas: Record<string, bigint> = {};

    const as = (wallet: HDNodeWallet, contract: Contract = exchange) => new Contract(contract.target, artifact.abi as InterfaceAbi, wallet);
    const mined = async (sent: Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> => {
        const receipt = await (await sent).wait();
        if (!receipt) throw new Error('no receipt');
        return receipt;
    };
    const latest = async () => {
        const block = await provider.getBlock('latest');
        if (!block) throw new Error('no latest block');
        return block.timestamp;
    };
    /** A fresh, unique proposal id. */
    const newId = () => keccakId(`proposal ${++proposalSeq}`);
    const addresses = (wallets: HDNodeWallet[]) => wallets.map((w) => w.address);
    /** Creates an open proposal as the operator; `deadline` defaults to an hour from the latest block. */
    const create = async (members: HDNodeWallet[], assets: AssetInput[] = [asset('a')], deadline?: number) => {
        const proposalId = newId();
        const due = deadline ?? (await latest()) + HOUR;
        const receipt = await mined(exchange.createProposal(proposalId, addresses(members), assets, due));
        return { id: proposalId, deadline: due, receipt };
    };
    const signAs = (wallet: HDNodeWallet, proposalId: string) => mined(as(wallet).sign(proposalId));
    async function deploy(deployer: HDNodeWallet): Promise<{ contract: Contract; receipt: ContractTransactionReceipt }> {
        const factory = new ContractFactory(artifact.abi as InterfaceAbi, artifact.bytecode, deployer);
        const deployed = await factory.deploy();
        const receipt = await deployed.deploymentTransaction()!.wait();
        if (!receipt) throw new Error('no deployment receipt');
        return { contract: new Contract(await deployed.getAddress(), artifact.abi as InterfaceAbi, deployer), receipt };
    }

    beforeAll(async () => {
        chain = await startLedger({ mining: 'instant' });
        // No response cache: a wallet sending back to back must see each new nonce.
        provider = new JsonRpcProvider(chain.url, 31337, { staticNetwork: true, cacheTimeout: -1 });
        provider.pollingInterval = 50;
        const wallet = () => Wallet.createRandom().connect(provider);
        operator = wallet();
        outsider = wallet();
        parties = Array.from({ length: 9 }, wallet);
        for (const w of [operator, outsider, ...parties]) await chain.fund(w.address);
        exchange = (await deploy(operator)).contract;
    });
    afterAll(async () => {
        if (Object.keys(gas).length) console.log(`EnergyExchange gas used:\n${Object.entries(gas).map(([what, used]) => `  ${what}: ${used}`).join('\n')}`);
        provider?.destroy();
        await chain?.stop();
    });

    describe('ownership', () => {
        it('makes the deployer the owner, announced as a transfer from the zero address', async () => {
            const { contract, receipt } = await deploy(operator);
            expect(receipt.status).toBe(1);
            expect(events(receipt)).toEqual([{ name: 'OwnershipTransferred', args: [ZeroAddress, operator.address] }]);
            expect(await contract.owner()).toBe(operator.address);
            expect(await contract.pendingOwner()).toBe(ZeroAddress);
        });

        it('hands over in two steps: only the owner starts, only the named account accepts', async () => {
            const { contract } = await deploy(operator);
            const successor = parties[8];

            await expectRevert(as(outsider, contract).transferOwnership(outsider.address), 'NotOwner', [outsider.address]);
            await expectRevert(contract.transferOwnership(ZeroAddress), 'ZeroAddress');

            const started = await mined(contract.transferOwnership(successor.address));
            expect(events(started)).toEqual([{ name: 'OwnershipTransferStarted', args: [operator.address, successor.address] }]);
            expect(await contract.pendingOwner()).toBe(successor.address);
            expect(await contract.owner()).toBe(operator.address);

            await expectRevert(as(outsider, contract).acceptOwnership(), 'NotPendingOwner', [outsider.address]);
            await expectRevert(contract.acceptOwnership(), 'NotPendingOwner', [operator.address]);

            const accepted = await mined(as(successor, contract).acceptOwnership());
            expect(events(accepted)).toEqual([{ name: 'OwnershipTransferred', args: [operator.address, successor.address] }]);
            expect(await contract.owner()).toBe(successor.address);
            expect(await contract.pendingOwner()).toBe(ZeroAddress);
            // The pending slot is cleared: accepting twice fails.
            await expectRevert(as(successor, contract).acceptOwnership(), 'NotPendingOwner', [successor.address]);

            // The old owner lost every owner-only function; the new one has them.
            const proposalId = newId();
            const deadline = (await latest()) + HOUR;
            const members = addresses(parties.slice(0, 2));
            await expectRevert(contract.createProposal(proposalId, members, [asset('x')], deadline), 'NotOwner', [operator.address]);
            await expectRevert(contract.transferOwnership(operator.address), 'NotOwner', [operator.address]);
            const created = await mined(as(successor, contract).createProposal(proposalId, members, [asset('x')], deadline));
            expect(events(created).map((e) => e.name)).toEqual(['ProposalCreated']);
            await expectRevert(contract.cancelProposal(proposalId), 'NotOwner', [operator.address]);
            await mined(as(successor, contract).cancelProposal(proposalId));
            expect(await contract.statusOf(proposalId)).toBe(Status.Cancelled);
        });
    });

    describe('createProposal', () => {
        it('records two parties, the asset and the deadline, and announces them', async () => {
            const members = parties.slice(0, 2);
            const document = asset('two-party');
            const { id: proposalId, deadline, receipt } = await create(members, [document]);
            const block = await provider.getBlock(receipt.blockNumber);

            expect(events(receipt)).toEqual([{ name: 'ProposalCreated', args: [proposalId, addresses(members), BigInt(deadline), 1n] }]);
            expect((await exchange.getProposal(proposalId)).toArray(true)).toEqual([Status.Open, BigInt(deadline), BigInt(block!.timestamp), addresses(members), 0n, 1n]);
            expect((await exchange.getAsset(proposalId, 0)).toArray()).toEqual([document.hash, document.algorithm, document.location]);
            expect(await exchange.statusOf(proposalId)).toBe(Status.Open);
            expect(await exchange.isCompleted(proposalId)).toBe(false);
            for (const m of members) expect(await exchange.hasSigned(proposalId, m.address)).toBe(false);

            gas[`createProposal (2 parties, 1 asset, ${document.location.length}-byte location)`] = receipt.gasUsed;
            // Storage dominates: a packed header, one slot a party, the asset's hash, algorithm and location.
            expect(receipt.gasUsed).toBeLessThan(260_000n);
        });

        it('records eight parties and sixteen assets (the maxima), an empty location read back as empty', async () => {
            const members = parties.slice(0, 8);
            const assets = Array.from({ length: 16 }, (_, i) => asset(`doc-${i}`, i === 3 ? '' : `https://example.org/${i}`));
            assets[5] = { ...assets[5], algorithm: 'keccak256' };
            const { id: proposalId, deadline, receipt } = await create(members, assets);
            gas['createProposal (8 parties, 16 assets)'] = receipt.gasUsed;

            expect(events(receipt)).toEqual([{ name: 'ProposalCreated', args: [proposalId, addresses(members), BigInt(deadline), 16n] }]);
            const [status, , , recorded, signatures, assetCount] = await exchange.getProposal(proposalId);
            expect([status, recorded.toArray(), signatures, assetCount]).toEqual([Status.Open, addresses(members), 0n, 16n]);
            for (const [i, a] of assets.entries()) {
                expect((await exchange.getAsset(proposalId, i)).toArray()).toEqual([a.hash, a.algorithm, a.location]);
            }
        });

        it('is for the owner only', async () => {
            const deadline = (await latest()) + HOUR;
            await expectRevert(as(outsider).createProposal(newId(), addresses(parties.slice(0, 2)), [asset('a')], deadline), 'NotOwner', [outsider.address]);
            // A party is no owner either.
            await expectRevert(as(parties[0]).createProposal.staticCall(newId(), addresses(parties.slice(0, 2)), [asset('a')], deadline), 'NotOwner', [parties[0].address]);
        });

        it('refuses the zero id and an id already used', async () => {
            const members = addresses(parties.slice(0, 2));
            const deadline = (await latest()) + HOUR;
            await expectRevert(exchange.createProposal(ZeroHash, members, [asset('a')], deadline), 'InvalidProposalId');

            const { id: used } = await create(parties.slice(2, 4));
            await expectRevert(exchange.createProposal(used, members, [asset('a')], deadline), 'ProposalExists', [used]);
            // Still refused once the first one is closed: ids are never reused.
            await mined(exchange.cancelProposal(used));
            await expectRevert(exchange.createProposal(used, members, [asset('a')], deadline), 'ProposalExists', [used]);
        });

        it('needs two to eight distinct, non-zero parties', async () => {
            const deadline = (await latest()) + HOUR;
            const attempt = (members: string[]) => exchange.createProposal(newId(), members, [asset('a')], deadline);
            await expectRevert(attempt([]), 'InvalidPartyCount', [0n]);
            await expectRevert(attempt([parties[0].address]), 'InvalidPartyCount', [1n]);
            await expectRevert(attempt(addresses(parties.slice(0, 9))), 'InvalidPartyCount', [9n]);
            await expectRevert(attempt([parties[0].address, ZeroAddress]), 'ZeroAddress');
            await expectRevert(attempt([parties[0].address, parties[1].address, parties[2].address, parties[1].address]), 'DuplicateParty', [parties[1].address]);
            await expectRevert(attempt([parties[0].address, parties[0].address]), 'DuplicateParty', [parties[0].address]);
        });

        it('needs one to sixteen assets, each with a hash and an algorithm', async () => {
            const deadline = (await latest()) + HOUR;
            const attempt = (assets: AssetInput[]) => exchange.createProposal(newId(), addresses(parties.slice(0, 2)), assets, deadline);
            await expectRevert(attempt([]), 'NoAssets');
            await expectRevert(attempt(Array.from({ length: 17 }, (_, i) => asset(`d${i}`))), 'TooManyAssets', [17n]);
            await expectRevert(attempt([{ ...asset('a'), hash: ZeroHash }]), 'InvalidAsset', [0n]);
            await expectRevert(attempt([asset('a'), { ...asset('b'), algorithm: '' }]), 'InvalidAsset', [1n]);
        });

        it('needs a deadline after the current block', async () => {
            const now = await latest();
            const attempt = (deadline: number) => exchange.createProposal(newId(), addresses(parties.slice(0, 2)), [asset('a')], deadline);
            await expectRevert(attempt(now - HOUR), 'DeadlineInPast', [BigInt(now - HOUR)]);
            await expectRevert(attempt(now), 'DeadlineInPast', [BigInt(now)]);
            await expectRevert(attempt(0), 'DeadlineInPast', [0n]);
        });
    });

    describe('sign', () => {
        it('takes each party once and completes on the last signature', async () => {
            const members = parties.slice(0, 8);
            const { id: proposalId } = await create(members);
            for (const [i, member] of members.entries()) {
                const receipt = await signAs(member, proposalId);
                const last = i === members.length - 1;
                expect(events(receipt)).toEqual([
                    { name: 'ProposalSigned', args: [proposalId, member.address, BigInt(i + 1)] },
                    ...(last ? [{ name: 'ProposalCompleted', args: [proposalId] }] : []),
                ]);
                expect(await exchange.hasSigned(proposalId, member.address)).toBe(true);
                expect(await exchange.statusOf(proposalId)).toBe(last ? Status.Completed : Status.Open);
                expect(await exchange.isCompleted(proposalId)).toBe(last);
                expect((await exchange.getProposal(proposalId))[4]).toBe(BigInt(i + 1));
                if (!last) expect(await exchange.hasSigned(proposalId, members[i + 1].address)).toBe(false);
                else gas['sign that completes (8 parties, the 8th looked up last)'] = receipt.gasUsed;
            }
            // Completed: no more signatures, not even a repeated one.
            await expectRevert(as(members[0]).sign(proposalId), 'ProposalNotOpen', [proposalId, Status.Completed]);
        });

        it('measures the gas of a two-party signing', async () => {
            const members = parties.slice(0, 2);
            const { id: proposalId } = await create(members);
            const first = await signAs(members[1], proposalId);
            const completing = await signAs(members[0], proposalId);
            expect(events(first).map((e) => e.name)).toEqual(['ProposalSigned']);
            expect(events(completing).map((e) => e.name)).toEqual(['ProposalSigned', 'ProposalCompleted']);
            expect(await exchange.isCompleted(proposalId)).toBe(true);
            gas['sign (2 parties, not the last)'] = first.gasUsed;
            gas['sign that completes (2 parties)'] = completing.gasUsed;
            // One header slot read and written, at most eight party reads: no mapping per signature.
            expect(first.gasUsed).toBeLessThan(40_000n);
            expect(completing.gasUsed).toBeLessThan(40_000n);
        });

        it('refuses a second signature by the same party', async () => {
            const { id: proposalId } = await create(parties.slice(0, 3));
            await signAs(parties[2], proposalId);
            await expectRevert(as(parties[2]).sign(proposalId), 'AlreadySigned', [proposalId, parties[2].address]);
            expect((await exchange.getProposal(proposalId))[4]).toBe(1n);
            expect(await exchange.statusOf(proposalId)).toBe(Status.Open);
        });

        it('refuses an account that is not a party, the operator included', async () => {
            const { id: proposalId } = await create(parties.slice(0, 2));
            await expectRevert(as(outsider).sign(proposalId), 'NotAParty', [proposalId, outsider.address]);
            await expectRevert(exchange.sign(proposalId), 'NotAParty', [proposalId, operator.address]);
            expect(await exchange.hasSigned(proposalId, outsider.address)).toBe(false);
        });

        it('refuses an unknown proposal', async () => {
            const unknown = newId();
            await expectRevert(as(parties[0]).sign(unknown), 'ProposalNotFound', [unknown]);
            await expectRevert(as(parties[0]).sign(ZeroHash), 'ProposalNotFound', [ZeroHash]);
        });

        it('accepts a signature in the deadline second and refuses one after it', async () => {
            const members = parties.slice(0, 3);
            const { id: proposalId, deadline } = await create(members, [asset('a')], (await latest()) + 100);

            await chain.rpc('evm_setNextBlockTimestamp', [deadline]);
            const atDeadline = await signAs(members[0], proposalId);
            expect((await provider.getBlock(atDeadline.blockNumber))!.timestamp).toBe(deadline);
            expect(events(atDeadline).map((e) => e.name)).toEqual(['ProposalSigned']);

            await chain.rpc('evm_increaseTime', [1]);
            await chain.mine();
            expect(await latest()).toBeGreaterThan(deadline);
            await expectRevert(as(members[1]).sign(proposalId), 'DeadlinePassed', [proposalId, BigInt(deadline)]);
            // The deadline is checked before membership: an outsider learns nothing more.
            await expectRevert(as(outsider).sign(proposalId), 'DeadlinePassed', [proposalId, BigInt(deadline)]);
            // Expired but not closed until the operator cancels it.
            expect(await exchange.statusOf(proposalId)).toBe(Status.Open);
            const cancelled = await mined(exchange.cancelProposal(proposalId));
            expect(events(cancelled)).toEqual([{ name: 'ProposalCancelled', args: [proposalId] }]);
            expect(await exchange.statusOf(proposalId)).toBe(Status.Cancelled);
        });

        it('refuses signatures after a cancellation', async () => {
            const { id: proposalId } = await create(parties.slice(0, 2));
            await signAs(parties[0], proposalId);
            await mined(exchange.cancelProposal(proposalId));
            await expectRevert(as(parties[1]).sign(proposalId), 'ProposalNotOpen', [proposalId, Status.Cancelled]);
            await expectRevert(as(parties[0]).sign(proposalId), 'ProposalNotOpen', [proposalId, Status.Cancelled]);
            expect(await exchange.isCompleted(proposalId)).toBe(false);
            // What was signed before the cancellation stays on record.
            expect(await exchange.hasSigned(proposalId, parties[0].address)).toBe(true);
        });
    });

    describe('cancelProposal', () => {
        it('closes an open proposal, once', async () => {
            const { id: proposalId } = await create(parties.slice(0, 2));
            const receipt = await mined(exchange.cancelProposal(proposalId));
            expect(events(receipt)).toEqual([{ name: 'ProposalCancelled', args: [proposalId] }]);
            expect(await exchange.statusOf(proposalId)).toBe(Status.Cancelled);
            expect((await exchange.getProposal(proposalId))[0]).toBe(Status.Cancelled);
            await expectRevert(exchange.cancelProposal(proposalId), 'ProposalNotOpen', [proposalId, Status.Cancelled]);
        });

        it('is for the owner only, parties included', async () => {
            const { id: proposalId } = await create(parties.slice(0, 2));
            await expectRevert(as(outsider).cancelProposal(proposalId), 'NotOwner', [outsider.address]);
            await expectRevert(as(parties[0]).cancelProposal(proposalId), 'NotOwner', [parties[0].address]);
            expect(await exchange.statusOf(proposalId)).toBe(Status.Open);
        });

        it('refuses an unknown or a completed proposal', async () => {
            const unknown = newId();
            await expectRevert(exchange.cancelProposal(unknown), 'ProposalNotFound', [unknown]);
            const { id: proposalId } = await create(parties.slice(0, 2));
            await signAs(parties[0], proposalId);
            await signAs(parties[1], proposalId);
            await expectRevert(exchange.cancelProposal(proposalId), 'ProposalNotOpen', [proposalId, Status.Completed]);
            expect(await exchange.isCompleted(proposalId)).toBe(true);
        });
    });

    describe('views', () => {
        it('answer for an unknown proposal: not found, or none/false', async () => {
            const unknown = newId();
            await expectRevert(exchange.getProposal(unknown), 'ProposalNotFound', [unknown]);
            await expectRevert(exchange.getAsset(unknown, 0), 'ProposalNotFound', [unknown]);
            expect(await exchange.statusOf(unknown)).toBe(Status.None);
            expect(await exchange.isCompleted(unknown)).toBe(false);
            expect(await exchange.hasSigned(unknown, parties[0].address)).toBe(false);
            expect(await exchange.hasSigned(unknown, ZeroAddress)).toBe(false);
        });

        it('refuse an asset index past the last asset', async () => {
            const assets = [asset('first'), asset('second')];
            const { id: proposalId } = await create(parties.slice(0, 2), assets);
            expect((await exchange.getAsset(proposalId, 1)).toArray()).toEqual([assets[1].hash, 'sha256', assets[1].location]);
            await expectRevert(exchange.getAsset(proposalId, 2), 'InvalidAsset', [2n]);
            await expectRevert(exchange.getAsset(proposalId, 2n ** 256n - 1n), 'InvalidAsset', [2n ** 256n - 1n]);
        });

        it('tell signed from unsigned parties and non-parties', async () => {
            const { id: proposalId } = await create(parties.slice(0, 3));
            await signAs(parties[1], proposalId);
            expect(await exchange.hasSigned(proposalId, parties[0].address)).toBe(false);
            expect(await exchange.hasSigned(proposalId, parties[1].address)).toBe(true);
            expect(await exchange.hasSigned(proposalId, parties[2].address)).toBe(false);
            expect(await exchange.hasSigned(proposalId, outsider.address)).toBe(false);
            expect(await exchange.hasSigned(proposalId, ZeroAddress)).toBe(false);
        });
    });
});
