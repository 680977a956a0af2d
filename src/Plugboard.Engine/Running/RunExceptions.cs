namespace Plugboard.Engine.Running;

/// <summary>A run failed for a reason already worded for the user (and redacted where it matters).</summary>
public sealed class RunFailedException(string message) : Exception(message);

/// <summary>A request exceeded its step timeout (after retries).</summary>
public sealed class StepTimeoutException(string message) : Exception(message);

/// <summary>A response body exceeded <see cref="RunnerOptions.MaxResponseBytes"/>.</summary>
public sealed class ResponseTooLargeException(string message) : Exception(message);
