import type { CosmosClient } from '@azure/cosmos';
import type { AuditTrail } from './audit/auditTrail';
import type { DeploymentClient } from './auth/deploymentClient';
import type { TokenValidator } from './auth/tokenValidator';
import type { Directory } from './directory/directory';
import type { RateLimiter } from './limits/rateLimiter';
import type { UsageMeter } from './usage/usageMeter';
import type { BlobStore } from './blobs/blobStore';
import type { Settings } from './config';
import type { HealthMonitor } from './health/health';
import type { MemberSubscriptions } from './events/memberSubscriptions';
import type { ContractAdmin } from './chain/contractAdmin';
import type { ChainEventHandler, ChainEventPump } from './chain/eventPump';
import type { SigningSagas } from './proposals/signingSagas';
import type { ProposalVerification } from './proposals/verification';
import type { MemberSigning } from './proposals/memberSigning';
import type { EventPublisher } from './events/events';
import type { Repository } from './documents/repository';
import type { DeploymentController } from './deployment/deploymentController';
import type { Organization } from './registration/organizations';
import type { Registrations } from './registration/registrations';
import type { Onboarding } from './registration/onboarding';
import type { AccountRegistry } from './accounts/accountRegistry';
import type { MemberAccounts } from './accounts/memberAccounts';
import type { EventFeed } from './events/eventFeed';
import type { Treasury, TopUpPolicy, TopUpResult } from './treasury/treasury';
import type { NodeRegistry } from './nodes/nodeRegistry';
import type { NodeWatchdog, NodeProbe } from './nodes/watchdog';
import type { CoreTransitionReporter } from './nodes/controllers';
import type { KeystoreBackups } from './keystore/keystoreBackups';
import type { Assets } from './assets/assets';
import type { Proposals } from './proposals/proposals';
import type { MemberProposalCopies } from './proposals/memberCopies';
import type { Webhooks } from './webhooks/webhooks';
import type { IdempotentResponses } from './http/idempotency';
import type { MailSender } from './mail/mailSender';
import type { KeyStore, SecretStore } from './vault/vault';

/**
 * What the app's handlers, timers and activities are given: the ports and use cases, each
 * backed by the adapter the composition root (composition.ts) chose from settings.
 */
export interface Services {
    settings: Settings;
    cosmos: CosmosClient;
    blobs: BlobStore;
    secrets: SecretStore;
    keys: KeyStore;
    mail: MailSender;
    tokens: TokenValidator;
    directory: Directory;
    audit: AuditTrail;
    usage: UsageMeter;
    limiter: RateLimiter;
    /** Registrations and their links (core). */
    registrations(): Registrations;
    /** The steps of onboarding an approved organisation (core). */
    onboarding(): Onboarding;
    /** Member deployments: ARM in Azure, app instances in the devhost. */
    deployments(): DeploymentController;
    /** Organisation records (core). */
    organizations: Repository<Organization>;
    /** Contract versions and the operator's deployments of them (core). */
    contracts(): ContractAdmin;
    /** An account's balance as the ledger has it now, in wei. */
    balanceOf(address: string): Promise<bigint>;
    /** The chain event pump over every contract version, handing decoded events to `handler` (core). */
    chainEventPump(handler: ChainEventHandler): ChainEventPump;
    /** Events out to members (API.md "Events"): each organisation's feed (core), then the topic, one message per organisation concerned. */
    events(): EventPublisher;
    /** The per-organisation event feed (core). */
    eventFeed: EventFeed;
    /** Organisations' webhooks and their deliveries (core). */
    webhooks: Webhooks;
    /** First responses kept for retries with the same Idempotency-Key. */
    idempotency: IdempotentResponses;
    /** Member accounts registered with the core (core). */
    accountRegistry: AccountRegistry;
    /** This member's own accounts, their keys in its own vault (member). */
    memberAccounts(): MemberAccounts;
    /** Documents behind deals: content in Blob storage, hash and location for the ledger (core). */
    assets: Assets;
    /** Ether grants from the operator account (core). */
    treasury(): Treasury;
    /** The top-up policy from settings. */
    topUpPolicy: TopUpPolicy;
    /**
     * The top-up policy applied to one registered account now (core): the timer, the top-up route and
     * account registration all go through it, so they share its caps and its one grant per window.
     */
    topUp(orgId: string, address: string): Promise<TopUpResult>;
    /** The consortium's nodes (core). */
    nodes: NodeRegistry;
    /** Reads nodes' heads and block hashes over JSON-RPC (both watchdogs). */
    nodeProbe: NodeProbe;
    /** This member's watchdog over its own nodes, and the core client it registers and reports them with (member). */
    nodeWatchdog(): { watchdog: NodeWatchdog; core: CoreTransitionReporter };
    /** Backups of this member's account keys (member). */
    keystoreBackups(): KeystoreBackups;
    /** Proposals and the ledger calls of their saga (core). */
    proposals(): Proposals;
    /** Starting proposals' signing sagas and rejecting proposals (core). */
    signingSagas(): SigningSagas;
    /** Documents checked against the hashes a proposal anchored (core). */
    verification(): ProposalVerification;
    /** Signing a proposal with this organisation's party account (member). */
    memberSigning(): MemberSigning;
    /** This member's copies of the proposals that concern it, fed by the core's events (member). */
    memberProposals(): MemberProposalCopies;
    /** Calls another deployment's API with this deployment's client-credential token. */
    deploymentClient(baseUrl: string): DeploymentClient;
    /** Members' subscriptions on the events topic (the core provisions them while onboarding). */
    memberSubscriptions(): MemberSubscriptions;
    /** Creates the database and containers when missing; idempotent. */
    ensureStores(): Promise<void>;
    /** The app's health: a recent result for anyone, a fresh check for the operator. */
    health: HealthMonitor;
}

/** The topic every event goes out on (API.md, "Events"). */
export const EVENTS_TOPIC = 'flexchange-events';
