"""Solutions to the exercises of notebooks/04_bfi_sff.ipynb (notebooks/conftest.py runs them)."""

SOLUTIONS = {
    1: '''# Exercise 1: write sff_params(channels, num_inputs=2, reduction=4, min_width=8), the number of
# parameters of fusion.SFF(channels, num_inputs, reduction, min_width), from the equations of
# section 2 (two linear layers with biases and a LayerNorm with a scale and a shift).
def sff_params(channels, num_inputs=2, reduction=4, min_width=8):
    hidden = max(channels // reduction, min_width)               # d
    squeeze = channels * hidden + hidden + 2 * hidden             # W_r with bias, LayerNorm
    select = hidden * num_inputs * channels + num_inputs * channels   # W_1 ... W_n with biases
    return squeeze + select
''',
    2: '''# Exercise 2: set the parameters of `picky` (an SFF of 16 channels, two inputs) by hand, without
# training, so that it returns its FIRST input whatever the inputs are: every weight a_1 above
# 0.999. Hint: which outputs of `select` are the logits of input 1, and which of input 2?
picky = fusion.SFF(16)
with torch.no_grad():
    picky.select.weight.zero_()          # the logits no longer depend on the inputs
    picky.select.bias[:16] = 20.0        # view(-1, 2, 16): outputs 0-15 are input 1's logits
    picky.select.bias[16:] = -20.0       # and outputs 16-31 input 2's: a_1 = sigmoid(40)
''',
    3: '''# Exercise 3: write bfi_forward(bfi, c, t) -> (c', t') computing what bfi(c, t) does, from its
# parts only: bfi.align_c2t, bfi.fuse_t, bfi.align_t2c, bfi.fuse_c (a part is None when the
# interaction leaves its direction out; that stream then passes through unchanged).
def bfi_forward(bfi, c, t):
    t_out = t if bfi.fuse_t is None else bfi.fuse_t(t, bfi.align_c2t(c))   # CNN -> Transformer
    c_out = c if bfi.fuse_c is None else bfi.fuse_c(c, bfi.align_t2c(t))   # Transformer -> CNN
    return c_out, t_out
''',
}
