"""vastai"""
