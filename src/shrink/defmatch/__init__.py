"""Definition matching (WiC-TSV target sense verification): does a usage of a word in a context
match a given definition? Frozen-encoder features (data, features) feed small trained heads
(heads, train), after the seed report on summing the last four hidden layers."""
