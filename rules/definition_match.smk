def dm_targets():
    return []
