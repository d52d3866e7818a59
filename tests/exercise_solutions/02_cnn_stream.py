"""Solutions to the exercises of notebooks/02_cnn_stream.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: write block_params(c_in, c_out), the number of parameters of
# cnn.PreActResBlock(c_in, c_out), from a formula (two GroupNorms with a scale and a shift per
# channel, two 3x3 convolutions with biases, and the 1x1 shortcut with bias when c_in != c_out).
def block_params(c_in, c_out):
    norms = 2 * c_in + 2 * c_out                                   # scale and shift per channel
    convs = (9 * c_in * c_out + c_out) + (9 * c_out * c_out + c_out)
    shortcut = 0 if c_in == c_out else c_in * c_out + c_out
    return norms + convs + shortcut
''',
    2: '''# Exercise 2: write bottleneck_rf(depths), the side in pixels of the receptive field of one
# bottleneck pixel of cnn.CNNStream(in_channels, widths, depths), norms ignored. depths has one
# entry per scale plus the bottleneck's. Use r = 1 + sum (k - 1) * jump over the 3x3 stem, the
# blocks (two 3x3 convolutions each) and the stride-2 3x3 downsamplings.
def bottleneck_rf(depths):
    rf, jump = 1 + 2, 1                    # the 3x3 stem
    for depth in depths[:-1]:
        rf += 4 * jump * depth             # each block: two 3x3 convolutions
        rf += 2 * jump                     # the stride-2 3x3 downsampling ...
        jump *= 2                          # ... doubles the distance between positions
    return rf + 4 * jump * depths[-1]      # the bottleneck's blocks
''',
    3: '''# Exercise 3: bidsnet_lib.model runs the CNN and Transformer U's side by side, stage by stage,
# through their attributes. Write u_forward(stream, x) that computes stream(x) using only
# stream.stem, .encoder, .downsample, .bottleneck, .upsample, .merge, .decoder and .num_scales
# (not stream.forward), as that model does.
def u_forward(stream, x):
    x = stream.stem(x)                                  # (B, w0, H, W)
    skips = []
    for s in range(stream.num_scales):
        x = stream.encoder[s](x)
        skips.append(x)                                 # (B, w_s, H/2^s, W/2^s)
        x = stream.downsample[s](x)
    x = stream.bottleneck(x)
    for s in reversed(range(stream.num_scales)):
        x = stream.upsample[s](x)
        x = stream.merge[s](torch.cat([x, skips[s]], dim=1))   # 2 w_s -> w_s channels
        x = stream.decoder[s](x)
    return x
''',
}
