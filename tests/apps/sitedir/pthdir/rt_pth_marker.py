VALUE = 'pth'
