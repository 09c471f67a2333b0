namespace Mcir.Core.Data;

/// <summary>Why <see cref="ImageIO.Read(string, ImageReadOptions?)"/> rejected a file.</summary>
public enum ImageReadFailure
{
    /// <summary>No file at the path.</summary>
    NotFound,
    /// <summary>The file exists but could not be opened or read (permissions, I/O error).</summary>
    Unreadable,
    /// <summary>The file has 0 bytes.</summary>
    Empty,
    /// <summary>The content is not a recognised image (e.g. a text file renamed .png).</summary>
    UnknownFormat,
    /// <summary>A recognised image format that this reader does not support (e.g. GIF, EXR).</summary>
    UnsupportedFormat,
    /// <summary>The file ends before the image data does.</summary>
    Truncated,
    /// <summary>The structure or checksums are invalid, or the decoder rejected the data.</summary>
    Corrupt,
    /// <summary>Width × height exceeds <see cref="ImageReadOptions.MaxPixels"/>.</summary>
    TooLarge,
    /// <summary>The image has an alpha channel and <see cref="ImageReadOptions.Alpha"/> is <see cref="AlphaHandling.Error"/>.</summary>
    HasAlpha,
}

/// <summary>
/// An image file could not be read. <see cref="Exception.Message"/> always starts with the file's path followed by
/// what was found and what was expected, e.g. <c>/data/x.png: truncated PNG: ...</c>.
/// </summary>
public sealed class ImageReadException : IOException
{
    public ImageReadException(string path, ImageReadFailure failure, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
        Failure = failure;
    }

    /// <summary>The path as passed to the reader.</summary>
    public string FilePath { get; }

    /// <summary>The category of the problem.</summary>
    public ImageReadFailure Failure { get; }
}
