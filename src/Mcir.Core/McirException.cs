namespace Mcir.Core;

/// <summary>
/// A user-facing error: bad input, configuration or files. The message says what was found, where (file, key,
/// value) and what was expected; hosts print it without a stack trace.
/// </summary>
public class McirException : Exception
{
    public McirException(string message) : base(message) { }
    public McirException(string message, Exception inner) : base(message, inner) { }
}
