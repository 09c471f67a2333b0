using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Mcir.Generators.Helpers;

/// <summary>A source location as plain values (no syntax tree), so diagnostics can travel through the pipeline.</summary>
internal sealed record LocationInfo(string FilePath, TextSpan TextSpan, LinePositionSpan LineSpan)
{
    public static LocationInfo? From(Location? location) =>
        location is null || location.SourceTree is null
            ? null
            : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);

    public static LocationInfo? From(SyntaxNode? node) => node is null ? null : From(node.GetLocation());

    public Location ToLocation() => Location.Create(FilePath, TextSpan, LineSpan);
}
