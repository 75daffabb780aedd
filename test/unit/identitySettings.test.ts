import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { StorageSharedKeyCredential } from '@azure/storage-blob';
import { loadSettings } from '../../shared/config';
import { blobServiceFor } from '../../shared/composition';

/**
 * In Azure the app reaches storage, mail and Service Bus with its managed identity: the settings take
 * that shape (no account key or connection string), as the Functions host reads AzureWebJobsStorage__*.
 */
describe('identity-based settings', () => {
    const base = {
        COSMOS_ENDPOINT: 'https://core.documents.azure.com:443/',
        FLEXCHANGE_KEYVAULT_URL: 'https://core.vault.azure.net',
        FLEXCHANGE_AUTH_ISSUER: 'https://login.microsoftonline.com/tenant/v2.0',
        FLEXCHANGE_AUTH_JWKS_URI: 'https://login.microsoftonline.com/tenant/discovery/v2.0/keys',
        FLEXCHANGE_LEDGER_RPC_URLS: 'http://10.0.1.4:8545',
        FLEXCHANGE_CHAIN_ID: '4242',
    };
    const identity = { ...base, AzureWebJobsStorage__accountName: 'stfxcore1234', FLEXCHANGE_ACS_ENDPOINT: 'https://fx-acs.europe.communication.azure.com', FLEXCHANGE_SERVICEBUS_NAMESPACE: 'sb-fx.servicebus.windows.net' };
    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }) };

    it('are complete without any key or connection string', () => {
        const settings = loadSettings(identity);
        expect(settings.AzureWebJobsStorage).toBeUndefined();
        expect(settings.FLEXCHANGE_ACS_CONNECTION_STRING).toBeUndefined();
        expect(settings.FLEXCHANGE_SERVICEBUS_CONNECTION).toBeUndefined();
    });

    it('reach blob storage at the account endpoint with the token credential, or with the connection string when one is given', () => {
        const byAccount = blobServiceFor(loadSettings(identity), credential);
        expect(byAccount.url).toBe('https://stfxcore1234.blob.core.windows.net/');
        expect(byAccount.credential).toBe(credential);
        const byUri = blobServiceFor(loadSettings({ ...identity, AzureWebJobsStorage__accountName: undefined, AzureWebJobsStorage__blobServiceUri: 'https://stfxcore1234.privatelink.blob.core.windows.net' }), credential);
        expect(byUri.url).toBe('https://stfxcore1234.privatelink.blob.core.windows.net/');
        const local = blobServiceFor(loadSettings({ ...identity, AzureWebJobsStorage: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1' }), credential);
        expect(local.credential).toBeInstanceOf(StorageSharedKeyCredential);
    });

    it('are refused when storage or mail is not configured at all, naming both ways to configure it', () => {
        expect(() => loadSettings({ ...identity, AzureWebJobsStorage__accountName: undefined })).toThrow(/AzureWebJobsStorage .*AzureWebJobsStorage__accountName/);
        expect(() => loadSettings({ ...identity, FLEXCHANGE_ACS_ENDPOINT: undefined })).toThrow(/FLEXCHANGE_SMTP_URL, FLEXCHANGE_ACS_ENDPOINT or FLEXCHANGE_ACS_CONNECTION_STRING/);
        expect(() => loadSettings({ ...identity, AzureWebJobsStorage__accountName: 'Not_A_Name' })).toThrow(/AzureWebJobsStorage__accountName: a storage account name/);
    });
});
