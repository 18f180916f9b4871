# Writes the R data files read by tests/test_sources.py, in the layout of the datamicroarray
# package: one list with `x` (samples by features) and `y` (a class factor).
# Run with R 4.2 in this folder: Rscript make_fixtures.R
set.seed(1)
x <- matrix(round(rnorm(24), 3), nrow = 6, ncol = 4)
colnames(x) <- paste0("X", 1:4)
y <- factor(c("t", "n", "t", "t", "n", "n"))

# Column and row names, bzip2 as written by usethis::use_data.
named <- x
rownames(named) <- paste0("sample", 1:6)
toy_named <- list(x = named, y = y)
save(toy_named, file = "named_bzip2.RData", compress = "bzip2")

# No dimension names, gzip as written by save() by default.
toy_unnamed <- list(x = unname(x), y = y)
save(toy_unnamed, file = "unnamed_gzip.RData", compress = "gzip")

# A data frame for `x`, xz compression.
toy_frame <- list(x = as.data.frame(x), y = y)
save(toy_frame, file = "frame_xz.RData", compress = "xz")

write.csv(data.frame(x, y = y), "expected.csv", row.names = FALSE)
