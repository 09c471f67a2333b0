using Mcir.Core.Data;

namespace Mcir.Core.Metrics;

/// <summary>
/// ITU-R BT.601 luma as BasicSR computes it for the Y-channel metrics
/// (<c>basicsr.metrics.metric_util.to_y_channel</c> → <c>bgr2ycbcr(y_only=True)</c>).
/// </summary>
/// <remarks>
/// BasicSR works on BGR arrays and dots them with <c>[24.966, 128.553, 65.481]</c>, so in RGB terms
/// <c>Y = 16 + (65.481 R + 128.553 G + 24.966 B)</c> on [0, 1] samples. The dtype sequence reproduced here:
/// samples are <c>v / 255f</c> in float32; <c>np.dot(float32 array, python list)</c> promotes to float64 (the list
/// becomes a float64 array), so the dot runs in float64 in BGR order (<c>B*24.966 + G*128.553 + R*65.481</c>);
/// <c>+ 16.0</c> and <c>/ 255.</c> stay float64; the result is cast to float32 and multiplied by 255 in float32.
/// </remarks>
public static class ColorConversion
{
    /// <summary>Y on the 0–255 scale (unrounded) of one RGB sample given on the 0–255 scale.</summary>
    public static float RgbToY(float r, float g, float b)
    {
        // to_y_channel: img.astype(np.float32) / 255.
        double rf = r / 255f, gf = g / 255f, bf = b / 255f;
        // bgr2ycbcr(y_only=True): np.dot(img, [24.966, 128.553, 65.481]) + 16.0 in float64, BGR order.
        double y = bf * 24.966 + gf * 128.553 + rf * 65.481 + 16.0;
        // _convert_output_type_range(img, float32): img /= 255. (float64), then astype(float32).
        float yf = (float)(y / 255.0);
        // to_y_channel: img * 255. (float32 array times a Python float stays float32).
        return yf * 255f;
    }

    /// <summary>The Y plane (H×W, row-major, 0–255 scale, unrounded float32) of an RGB image.</summary>
    public static float[] YChannel(RgbImage img)
    {
        ArgumentNullException.ThrowIfNull(img);
        var p = img.Pixels;
        var y = new float[img.Height * img.Width];
        for (int i = 0; i < y.Length; i++)
            y[i] = RgbToY(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
        return y;
    }
}
