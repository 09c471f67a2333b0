using System;
using System.Text;

namespace Mcir.Generators.Helpers;

/// <summary>A minimal writer for readable generated code: four-space indentation, <c>\n</c> line ends.</summary>
internal sealed class IndentedWriter
{
    private const string IndentUnit = "    ";
    private readonly StringBuilder _builder = new();
    private int _depth;

    /// <summary>Writes one line at the current indentation (an empty line stays empty).</summary>
    public IndentedWriter Line(string text = "")
    {
        if (text.Length > 0)
        {
            for (var i = 0; i < _depth; i++)
            {
                _builder.Append(IndentUnit);
            }

            _builder.Append(text);
        }

        _builder.Append('\n');
        return this;
    }

    /// <summary>Writes <c>{</c>, indents until the returned scope is disposed, then writes <c>}</c>.</summary>
    public IDisposable Block(string closing = "}")
    {
        Line("{");
        _depth++;
        return new Scope(this, closing);
    }

    /// <summary>Indents until the returned scope is disposed (no braces).</summary>
    public IDisposable Indent()
    {
        _depth++;
        return new Scope(this, null);
    }

    public override string ToString() => _builder.ToString();

    private sealed class Scope(IndentedWriter writer, string? closing) : IDisposable
    {
        public void Dispose()
        {
            writer._depth--;
            if (closing is not null)
            {
                writer.Line(closing);
            }
        }
    }
}
