"""Exercise catalogue: one module per lesson or assignment; importing a module registers its exercises."""
