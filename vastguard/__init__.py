"""vastguard"""
