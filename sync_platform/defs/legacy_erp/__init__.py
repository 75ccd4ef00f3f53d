"""Legacy ERP (4D behind REST): products, variants (after their parents), customers."""
