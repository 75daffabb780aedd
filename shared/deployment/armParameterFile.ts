/** An ARM deployment parameter file (`az deployment group create -p @file`) giving each template parameter its value. */
export function armParameterFile(values: Record<string, unknown>): Record<string, unknown> {
    return {
        $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#',
        contentVersion: '1.0.0.0',
        parameters: Object.fromEntries(Object.entries(values).map(([name, value]) => [name, { value }])),
    };
}
