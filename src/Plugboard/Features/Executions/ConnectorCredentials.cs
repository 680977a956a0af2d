using System.Text.Json;
using Plugboard.Security;

namespace Plugboard.Features.Executions;

/// <summary>A connector's credential fields, decrypted in a worker for one run (executions and syncs).</summary>
public static class ConnectorCredentials
{
    /// <summary>The decrypted fields (none when the connector has no credential); null when the key ring cannot read them.</summary>
    public static Dictionary<string, string>? Decrypt(KeyRing keys, string workspaceId, Guid? credentialId, string? encrypted, ILogger logger, string run)
    {
        if (credentialId is not { } id || encrypted is null)
        {
            return [];
        }
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, string>>(
                keys.Decrypt(encrypted, KeyRing.Aad(workspaceId, "workspace_api_credentials", id, "encrypted_payload")));
        }
        catch (SecretDecryptionException e)
        {
            logger.LogError("{Run}: credential {CredentialId} unreadable: {Reason}", run, id, e.Message);
            return null;
        }
    }

    public const string Unreadable =
        "The connector's credential cannot be decrypted with this server's key ring: an operator must restore the key it was written with, or update the credential.";
}
