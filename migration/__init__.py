"""The migration ledger (上云台账): business systems moving onto the cloud, server rooms
and IT assets being retired. Pure domain code, like `quotas`.
"""
